"""The console adapter: the whole workflow in a terminal (`byoi-bot shell`, `byoi-bot demo`)."""
