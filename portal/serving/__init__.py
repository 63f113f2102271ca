"""What a web worker holds between requests: the live model, uploads on disk, exports."""
