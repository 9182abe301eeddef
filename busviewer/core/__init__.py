"""Data model, image reading, the study store and preprocessing. Never imports Qt."""
