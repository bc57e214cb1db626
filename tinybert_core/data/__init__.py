"""Data: text corpora in, masked MLM + NSP batches out.

- `corpus.py`: text files read as documents, tokenized once into a cache of int32 shards.
- `pretraining.py`: BERT segment pairs with dynamic masking, as a resumable batch iterator.
- `masking.py`: pair construction, truncation and masked-LM selection on id arrays.
- `default_corpus.py`: the embedded corpus (standard-library docstrings) and its vocabulary.
"""
