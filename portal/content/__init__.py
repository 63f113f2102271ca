"""Content generation: persona + campaign → prompt → provider (OpenAI or offline) → checked variants."""
