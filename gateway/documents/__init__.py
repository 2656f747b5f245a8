"""Readers of what clients upload, pure (no I/O of ours): audio length (mutagen), PDF
pages and their rendering (pypdf, pypdfium2), grey PNG pages. Providers, the simulator
and the inference routes all read documents the same way through here."""
