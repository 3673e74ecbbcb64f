"""This machine's sound device: PortAudio output, the speaker sink, the terminal keypad and microphone."""
