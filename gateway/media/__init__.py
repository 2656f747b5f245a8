"""Image and video generation: /v1/images/generations and /v1/videos, as operations on
the engine (engine/operations.py); money and retries are the engine's.

    images.py        the images request and the IMAGES operation (billed per image)
    videos.py        video jobs and the VIDEO operation: submit, list, read, cancel, content
    chat_images.py   images through a multimodal chat upstream (gemini)
    fetch.py         SSRF-guarded fetching of reference images (image_url)
"""
