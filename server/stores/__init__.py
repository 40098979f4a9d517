"""Storage: the Store protocol (base.py) and its two implementations, sqlite/ and mongo/."""
