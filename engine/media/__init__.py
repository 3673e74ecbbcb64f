"""The media plane: calls, the one loop that ticks them, its pacing and the sinks frames go to."""
