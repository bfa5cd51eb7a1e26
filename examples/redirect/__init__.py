"""The redirect example (Go Rony's example/redirect): client and server redirects between
replica sets. See ``app``."""
