"""The non-chat inference operations on the engine: embeddings, rerank, speech,
transcription, search and OCR (operations.py), and the per-upstream clients that serve
them (clients.py). Uploads are measured by gateway/documents before anything is held."""
