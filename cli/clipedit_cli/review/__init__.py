"""``clipedit review``: a local web app to look at edits next to their sources, review them, redo
them, and plan batches before paying for them. It talks to the stack only through the same
Backend (use cases and adapters) as the other commands."""
