"""The daemon's state: runs, results and nodes, in SQL through SQLAlchemy."""
