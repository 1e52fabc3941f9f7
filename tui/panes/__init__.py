"""One module per pane. Each pane is attributes-down: the app calls ``show(view, now_ms)`` with
the selected session's ``store.SessionView`` (or None) at most 30 times a second, and only when
something it shows changed; panes never read the feed themselves. Panes that page through
Redis (history) get the ``store.Connection`` at construction and do their I/O in workers."""
