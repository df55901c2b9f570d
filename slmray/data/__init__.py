"""Token data for the trainer: synthetic, Python's own sources, or Parquet token shards (`sources`);
`python -m slmray.data prepare` writes shards (`cli`).
"""
