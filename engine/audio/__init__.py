"""Audio in the call's format: decoding files, the voice library, the caller's side of a call."""
