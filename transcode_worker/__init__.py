"""transcode-worker: turns a movie on a NAS into an HLS stream, on demand."""

__version__ = "0.1.0"
