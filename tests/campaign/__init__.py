"""The reliability campaign: the fault matrix, the kill campaign, the soak, and the safety document's checks."""
