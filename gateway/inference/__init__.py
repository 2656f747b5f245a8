"""The non-chat inference operations: embeddings, rerank, token counting, speech,
transcription, search and OCR. probe.py measures what the client sent (audio length,
PDF pages) before anything is held or called."""
