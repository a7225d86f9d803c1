"""Adapters for external trainers: TRL (``trl.py``) and verl (``verl.py``). Each imports its trainer lazily."""
