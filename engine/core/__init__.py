"""The pure core: orders, their timeline, key collection and the player that turns them into frames."""
