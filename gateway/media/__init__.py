"""Image and video generation: /v1/images/generations and /v1/videos (issue 6).

    images.py   the images request: checks, hold, upstream, settle per image returned
    videos.py   video jobs: submit (hold), list, read, cancel (void), content
    jobs.py     the media service: upstream media clients and the video poller
    money.py    per-generation holds and closes over services.ledger
    fetch.py    SSRF-guarded fetching of reference images (image_url)
"""
