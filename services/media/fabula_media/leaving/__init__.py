"""Account deletion: the user's photos and every object of them go."""
