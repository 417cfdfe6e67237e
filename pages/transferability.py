import streamlit as st

st.title("Transferability")
st.info("This page is being built.")
