"""A second, differently shaped HTTP service, used only by this project's own tests.

It is "somebody else's service": a small notes API on DynamoDB with opaque bearer sessions,
a background worker that writes a welcome note after each registration, and a deliberately
sloppy ``DELETE /me`` that leaves the account's notes and sessions behind. It shares no code
with the harness or the reference service, so the tests that drive it prove the harness works
for a service it was not written around.

Run: ``python -m tests.services.notes_service --with-emulator`` (or the folder itself:
``python path/to/notes_service --with-emulator``); see ``app.py`` for routes and protocol.
"""
