"""The request engine: every operation's path, with I/O but no HTTP.

    call.py         leaf types: CallContext, Prepared, Outcome, OpenStream
    operations.py   the operation kinds, how each is held and priced (how to add one)
    pipeline.py     select -> admit -> dispatch -> close, for unary, streamed and job calls
    select.py       the async side of model selection (account default mode, plans)
    admission.py    rate limits, plan windows, the wallet hold, the request-log record
    dispatch.py     route order, breakers, fails_over, per-attempt deadlines
    sessions.py     X-Prism-Session memory;  jobs.py: long jobs (video) and their poller
"""
