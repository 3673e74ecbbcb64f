"""Text to speech: pyttsx3 on espeak-ng 1.52, one worker thread, cached in memory and on disk."""
