"""`tei-bento embed-corpus`: a corpus file in, Parquet shards of vectors out, resumably."""
