"""The whole network on one machine: launcher, client, load simulator."""
