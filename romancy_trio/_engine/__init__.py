"""The async driver of the replay core and the nursery-structured scheduler."""
