"""Text: BERT's WordPiece tokenizer and a vocabulary trainer.

- `tokenization.py`: `BertTokenizer` (Hugging Face's interface: ids, token types, attention
  mask, offsets, truncation, padding), built on the two below.
- `basic_tokenizer.py`: cleaning, lower-casing, accent stripping, punctuation splitting.
- `wordpiece.py`: greedy longest-match-first WordPiece over one word.
- `wordpiece_trainer.py`: train a WordPiece vocabulary from raw text.
"""
