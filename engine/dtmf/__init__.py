"""In-band DTMF: tone generation and a streaming detector, single-channel and batched across calls."""
