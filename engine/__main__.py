import signal
import sys

try:
    from engine.cli.main import main
except KeyboardInterrupt:  # Ctrl-C while the command itself starts: nothing began yet
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second one must not cut this line
    sys.stderr.write("interrupted\n")
    sys.exit(130)

code = main()
# The command is over and said how it ended; a Ctrl-C while Python shuts down ends the
# process as the shell expects (status 130), not with a traceback from an exit handler.
signal.signal(signal.SIGINT, signal.SIG_DFL)
sys.exit(code)
