"""The domain core: the session state machine, dose accounting, runtime monitors and treatment courses."""
