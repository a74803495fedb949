import sys

try:  # `import signal` too: its enum import alone is 10 ms of a Ctrl-C's window
    import signal

    from engine.cli.main import main
except KeyboardInterrupt:  # Ctrl-C while the command itself starts: nothing began yet
    import os  # loaded already by Python's own start: nothing here can be interrupted long

    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    os._exit(130)  # no shutdown for a second Ctrl-C to interrupt: nothing was opened

code = main()
# The command is over and has said how it ended: a Ctrl-C while Python shuts down (the
# second of a double press, say) changes nothing, where it was a traceback, status -2.
signal.signal(signal.SIGINT, signal.SIG_IGN)
sys.exit(code)
