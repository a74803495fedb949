"""``python -m engine``: the command line, its shared argument parsing and one module per
command. The top layer: it may import every other layer; nothing in ``engine`` imports it.
"""
