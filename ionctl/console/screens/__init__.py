"""The console's screens, one per step: `setup` (device, patient and operator, preset; the refusal to start
under an unapproved configuration), `prescription`, `checks` (contact, skin before, confirm), `run`, `fault`,
`end`. `base` holds what they share."""
