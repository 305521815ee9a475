"""The reference model: its assembly, CTranslate2 reader, trained weights and training data."""
