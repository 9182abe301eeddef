"""Use cases called by both front ends (CLI and GUI): Qt-free, one function per action."""
