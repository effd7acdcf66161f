"""The run itself: its lifecycle without pytest (``lifecycle``), one worker's engine objects
(``session``) and the embedded sandbox as a child process (``local_sandbox``).
"""
