"""The generator's version, written into every generated file's header.

A constant (not read from the installed distribution) so that the output does not depend on how
rony-server is installed; a test keeps it equal to ``rony.server.__version__``.
"""

GENERATOR_VERSION = "0.1.0"
