"""Design principles from the trial database (the reports issue builds this)."""
