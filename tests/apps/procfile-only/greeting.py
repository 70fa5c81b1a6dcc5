"""What the Procfile-only sample answers."""

GREETING = "hello from procfile-only\n"
