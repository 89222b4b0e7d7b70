"""The console's screens, one per step: `login` (the login the console starts with, and the idle lock),
`setup` (device, patient, preset; the refusal to start under an unapproved configuration), `prescription`,
`checks` (contact, skin before, confirm), `run`, `fault`, `end`, `override`, `addenda`. `base` holds what they
share."""
