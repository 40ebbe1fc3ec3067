"""Replays: the file format, the streaming recorder, the reader, verification and the viewer."""
