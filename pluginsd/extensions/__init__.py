"""Extensions: Python classes found through stevedore that follow events."""
