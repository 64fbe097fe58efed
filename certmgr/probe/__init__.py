"""Look at an MTA from outside: STARTTLS client, served-certificate facts, DNS, DANE, one assessment."""
