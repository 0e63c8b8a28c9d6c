"""Sharing trained runs: the Gradio demo (`app`) and publishing on the Hugging Face Hub (`publish`)."""
