import streamlit as st

st.title("Projection")
st.info("This page is being built.")
