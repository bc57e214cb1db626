"""Text: BERT's WordPiece tokenizer and a vocabulary trainer.

- `tokenization.py`: `BertTokenizer` (Hugging Face's interface: ids, token types, attention
  mask, offsets, truncation, padding), built on the basic and WordPiece tokenizers.
- `wordpiece_trainer.py`: train a WordPiece vocabulary from raw text.
"""
