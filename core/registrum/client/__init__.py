"""The client side: transports to the store, and (later) runs and their background writer."""
