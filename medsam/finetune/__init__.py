"""Finetuning on a frozen image encoder: prompted decoder finetuning and prompt-free heads."""
