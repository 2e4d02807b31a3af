"""The difference between declared and applied, as API requests; saved plans and the plan cache."""
