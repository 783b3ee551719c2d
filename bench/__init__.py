"""Performance at Lambda's operating point; see bench/README.md. Run: .venv/bin/python -m bench"""
