"""The command line: thin edges over the engine (render, detect, demo, serve, play, devices)."""
