fn main() {
    println!("patroni {}", patroni::PATRONI_VERSION);
}
