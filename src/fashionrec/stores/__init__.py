"""Vector stores: where embeddings live and are searched. FAISS (embedded, default) or Milvus."""

from fashionrec.stores.base import Hit, VectorStore

__all__ = ["Hit", "VectorStore"]
